"""stallctl: the operators' CLI and the embedded runtime (broker, redis-server, services)."""
