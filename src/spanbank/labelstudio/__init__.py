"""Label Studio: the HTTP client (client) and the pure task/annotation conversion (convert)."""
