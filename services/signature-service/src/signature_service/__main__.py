"""signature-service: verifies the signatures on every submitted document.

python -m signature_service        (configuration: LIENTHONG_* variables, docs/configuration.md)
"""

from __future__ import annotations

from lienthong.events.v1.events_pb2 import DocumentSubmitted
from lienthong.signature.v1 import signature_service_pb2
from lienthong.signature.v1.signature_service_pb2_grpc import add_SignatureServiceServicer_to_server
from lienthong_kit.envelope import carries
from lienthong_kit.infra import every
from lienthong_kit.kafka import ConsumerSpec
from lienthong_kit.logs import get_logger
from lienthong_kit.server import Deps, GrpcService, Wiring, run_service
from signature_service.access import ACCESS
from signature_service.api import SignatureServicer
from signature_service.attachments import AttachmentFetcher, document_channel
from signature_service.consumers import VerificationFlow
from signature_service.operator_actions import TrustAnnouncer
from signature_service.policy import Policy, parse_rules
from signature_service.revocation import RevocationConfig
from signature_service.settings import Settings
from signature_service.store import SignatureStore
from signature_service.trust import TrustStore
from signature_service.verifier import Verifier

NAME = "signature-service"
log = get_logger(__name__)


async def build(deps: Deps[Settings]) -> Wiring:
    settings = deps.settings
    rules, _ = parse_rules(settings.signature_policy)
    if settings.signature_accept_unsigned:
        log.warning(
            "DEVELOPMENT_MODE_UNSIGNED_DOCUMENTS_ACCEPTED",
            setting="LIENTHONG_SIGNATURE_ACCEPT_UNSIGNED",
            note="documents without any signature are ACCEPTED unverified; never in production",
        )
    store = SignatureStore(deps.db)
    trust = TrustStore(
        store,
        anchors_path=settings.signature_trust_anchors,
        intermediates_path=settings.signature_intermediates,
    )
    await trust.reload()
    revocation = RevocationConfig(
        mode=settings.signature_revocation_mode,
        timeout=settings.signature_revocation_timeout_seconds,
        offline=settings.signature_revocation_offline,
        supplied=settings.signature_revocation_dir,
        cache=settings.signature_revocation_cache,
        cache_max_seconds=settings.signature_revocation_cache_max_seconds,
        max_bytes=settings.signature_revocation_max_bytes,
    )
    verifier = Verifier(
        trust,
        revocation,
        Policy(rules, accept_unsigned=settings.signature_accept_unsigned),
        workers=settings.signature_workers,
        timeout=settings.signature_validation_timeout_seconds,
        person_prefixes=settings.signature_person_uid_prefixes,
        organisation_prefixes=settings.signature_organisation_uid_prefixes,
        log_level=settings.log_level,
        memory_bytes=settings.signature_memory_per_worker_bytes,
        precheck_workers=settings.signature_precheck_workers,
        precheck_queue=settings.signature_precheck_queue,
        spool=settings.signature_spool_dir,
    )
    await verifier.warm_up()
    channel = document_channel(settings)
    fetcher = AttachmentFetcher(
        channel,
        timeout=settings.signature_fetch_timeout_seconds,
        max_bytes=settings.signature_max_file_bytes,
        dev_header=settings.signature_document_service_ca is None,
    )
    flow = VerificationFlow(
        store,
        deps.producer,
        deps.topics,
        verifier,
        fetcher,
        max_document_bytes=settings.signature_max_document_bytes,
        max_attempts=settings.signature_max_attempts,
        spool=settings.signature_spool_dir,
    )

    async def reload_trust() -> None:
        seconds = settings.signature_trust_reload_seconds
        await every(seconds, trust.reload, task="trust_reload", first_delay=seconds)

    async def stop() -> None:
        await channel.close(None)
        await verifier.aclose()

    log.info(
        "signature_service_configured",
        anchors=len(trust.anchors),
        intermediates=len(trust.intermediates),
        revocation_mode=revocation.mode,
        offline=revocation.offline,
        policy=[rule.text for rule in rules],
        document_service=settings.signature_document_service,
    )
    return Wiring(
        services=[
            GrpcService.of(
                signature_service_pb2,
                "SignatureService",
                add_SignatureServiceServicer_to_server,
                SignatureServicer(
                    store,
                    verifier,
                    trust,
                    max_file_bytes=settings.signature_max_file_bytes,
                    max_document_bytes=settings.signature_max_document_bytes,
                    announcer=TrustAnnouncer(deps.producer, deps.topics),
                    fetcher=fetcher,
                ),
                access=ACCESS,
            )
        ],
        consumers=[
            ConsumerSpec(
                NAME,
                [deps.topics.documents],
                flow.on_document,
                # one document per worker in flight: a queued one would spend its validation
                # timeout waiting (each waits on the store between, docs/benchmarks.md "April")
                concurrent_keys=max(1, settings.signature_workers),
                accepts=lambda envelope: carries(envelope, DocumentSubmitted),
                # the verdict is recorded with its event's id: that row and the verdicts this
                # process announced, not separate applied-event markers, tell a redelivery
                # (docs/decisions/0404)
                dedupe=False,
                known_applied=flow.announced,
            )
        ],
        tasks=[reload_trust],
        on_stop=[stop],
    )


def main() -> None:
    run_service(NAME, Settings, build)


if __name__ == "__main__":
    main()
