"""Settings, URL routing, the API's shared pieces and the WSGI entry point."""
