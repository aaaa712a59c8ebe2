from lienthong_testing.cleanup import namespace_of, namespaced


def test_only_test_and_benchmark_namespaces_are_taken() -> None:
    names = [
        "lienthong.documents",  # make run's topics, databases and reporting changelog
        "lienthong_document",
        "reporting-service-facts-changelog",
        "reporting-service-__assignor-__leader",
        "prod_lienthong.documents",  # a prefix chosen by hand
        "__consumer_offsets",  # Kafka's and the store's own
        "admin",
        "config",
        "t1a2b3c4d5_lienthong.documents",  # a test's
        "bench6c254d16_lienthong_document",  # a benchmark's
        "idlee5929ee0_reporting-service-facts-changelog",
    ]
    assert namespaced(names) == [
        "bench6c254d16_lienthong_document",
        "idlee5929ee0_reporting-service-facts-changelog",
        "t1a2b3c4d5_lienthong.documents",
    ]


def test_a_namespace_in_use_is_kept() -> None:
    names = ["t1a2b3c4d5_lienthong.documents", "bench6c254d16_lienthong_document"]
    assert namespaced(names, live={"t1a2b3c4d5_"}) == ["bench6c254d16_lienthong_document"]
    assert namespace_of("bench6c254d16_document-service-audit") == "bench6c254d16_"
    assert namespace_of("lienthong_document") is None
