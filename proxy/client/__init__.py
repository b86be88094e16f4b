"""Code that runs on the client machines, served by the proxy."""
