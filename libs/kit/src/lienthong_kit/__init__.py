"""lienthong's shared kit: what every service needs besides its domain.

Modules: settings (typed environment), logs (structlog JSON), metrics (Prometheus),
errors (the error hierarchy and gRPC status mapping), infra (what "the store or Kafka is
down" means, and retrying until it is back), tracing (OpenTelemetry, W3C trace context on
gRPC and Kafka), context (the caller's unit, the trace id), interceptors (per-RPC span,
identity, logging, metrics, errors), server (bootstrap and graceful shutdown), kafka (a
package: topics, admin, producer, read_range, the consumer loop, topic tails), envelope (the
event envelope), outbox (publish-after-store), mongo (the store client), paging, fanout,
vocabulary, codes, failpoints.
"""
