"""lienthong's shared kit: what every service needs besides its domain.

Modules: settings (typed environment), logs (structlog JSON), metrics (Prometheus),
errors (the error hierarchy and gRPC status mapping), context (trace id, caller unit),
interceptors (per-RPC identity, logging, metrics, errors), server (bootstrap and graceful
shutdown), kafka (topics, idempotent producer, consumer loop with dead-lettering),
envelope (the event envelope), outbox (publish-after-store), mongo (the store client).
"""
