from lienthong_testing.cleanup import namespaced


def test_only_namespaces_are_taken_never_the_platforms_own_or_internal_names() -> None:
    names = [
        "lienthong.documents",  # make run's topics and databases
        "lienthong_document",
        "__consumer_offsets",  # Kafka's
        "admin",  # the store's
        "local",
        "config",
        "t1a2b3c4d5_lienthong.documents",  # a test's
        "bench6c254d16_lienthong_document",  # a benchmark's
        "idlee5929ee0_lienthong-reporting-changelog",
    ]
    assert namespaced(names) == [
        "bench6c254d16_lienthong_document",
        "idlee5929ee0_lienthong-reporting-changelog",
        "t1a2b3c4d5_lienthong.documents",
    ]
