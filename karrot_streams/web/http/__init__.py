"""HTTP plumbing of the API: tokens, bodies, request parsing, errors, responses, middleware."""
