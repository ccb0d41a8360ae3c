"""The web dashboard (D28): server-rendered pages, the API's services and permissions."""
