"""Running the Envoy proxies: their bootstrap configuration and, on a host, their processes."""
