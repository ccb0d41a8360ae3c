"""HTTP: the route table, authentication, the envelope, OpenAPI. The only home of Starlette."""
