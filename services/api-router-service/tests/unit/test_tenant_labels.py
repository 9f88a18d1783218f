from api_router.telemetry.tenant_labels import OTHER_TENANTS, TenantLabels


def test_the_first_tenants_keep_their_name_and_the_rest_share_one() -> None:
    labels = TenantLabels(enabled=True, limit=2)
    assert [labels.label(t) for t in ("a", "b", "c", "a", "d", "b")] == [
        "a",
        "b",
        OTHER_TENANTS,
        "a",
        OTHER_TENANTS,
        "b",
    ]


def test_turned_off_no_tenant_gets_a_label() -> None:
    labels = TenantLabels(enabled=False, limit=2)
    assert {labels.label(t) for t in ("a", "b", "c")} == {""}
