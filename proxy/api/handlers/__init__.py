"""HTTP handlers: parse the request, call the libraries, render the result."""
