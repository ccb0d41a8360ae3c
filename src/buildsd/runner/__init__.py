"""The runner: claims queued builds through the services, clones, runs commands, streams logs."""
