"""The policy's decisions (`core.policy`), its config (`policy:` at three levels), and OSV
advisories read into an index (`core.advisories`)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from proxy.core.advisories import Advisory, AdvisoryIndex, build_index, parse_advisory
from proxy.core.config import ConfigError
from proxy.core.config_yaml import parse_config
from proxy.core.model import FileLink, NormalizedName, ProjectPage
from proxy.core.policy import Allowed, Judge, Policy, PolicyKey, refuse_project, screen
from proxy.core.routing import policy_for
from proxy.core.units import format_upload_time, parse_timestamp, upload_time

NOW = 1_800_000_000.0
DAY = 86400.0
NAME = NormalizedName("demo")


def link(version: str) -> FileLink:
    return FileLink(f"demo-{version}-py3-none-any.whl", f"https://m.test/demo-{version}.whl")


def osv(
    id: str, versions: list[str] | None = None, ranges: Any = None, **extra: Any
) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": "Demo"}}
    if versions is not None:
        affected["versions"] = versions
    if ranges is not None:
        affected["ranges"] = ranges
    return {"id": id, "affected": [affected], **extra}


def advisories(*documents: dict[str, Any]) -> AdvisoryIndex:
    index, bad = build_index(json.dumps(d).encode() for d in documents)
    assert bad == 0
    return index


def refusal_of(
    policy: Policy, version: str, age_days: float, index: AdvisoryIndex | None = None
) -> PolicyKey | None:
    judge = Judge(policy, NOW, index or AdvisoryIndex())
    refusal = judge.file(NAME, link(version), NOW - age_days * DAY).refusal
    return None if refusal is None else refusal.policy


# -- the cooldown -----------------------------------------------------------------------------


def test_min_age_and_exclude_newer() -> None:
    policy = Policy(min_age=7 * DAY)
    assert refusal_of(policy, "1.0", 8) is None
    assert refusal_of(policy, "1.0", 6) == "min_age"
    dated = Policy(exclude_newer=NOW - 10 * DAY)
    assert refusal_of(dated, "1.0", 11) is None
    assert refusal_of(dated, "1.0", 9) == "exclude_newer"


def test_the_allow_list_exempts_from_the_cooldown_only() -> None:
    index = advisories(osv("MAL-1", ["2.0"]))
    policy = Policy(
        min_age=7 * DAY,
        allow=(Allowed(NAME, Version("2.0")), Allowed(NormalizedName("other"))),
        advisories=Path("osv"),
    )
    assert refusal_of(policy, "1.0", 1, index) == "min_age"
    assert refusal_of(policy, "2.0", 1, index) == "advisory"  # allowed, but malware
    everything = Policy(min_age=7 * DAY, allow=(Allowed(NAME),))
    assert refusal_of(everything, "1.0", 1) is None


def test_the_refusal_names_the_key_in_words() -> None:
    refusal = Judge(Policy(min_age=7 * DAY), NOW).file(NAME, link("1.0"), NOW - DAY).refusal
    assert refusal is not None
    assert refusal.reason.startswith("demo-1.0-py3-none-any.whl is hidden by policy: min_age")


def test_screening_a_page_counts_what_it_hides() -> None:
    page = ProjectPage(NAME, (link("1.0"), link("1.1"), link("1.2")))
    ages = {"1.0": 30, "1.1": 10, "1.2": 1}
    judge = Judge(Policy(min_age=7 * DAY, exclude_newer=NOW - 20 * DAY), NOW)
    screened = screen(judge, page, lambda f: NOW - ages[f.filename.split("-")[1]] * DAY)
    assert [f.filename for f in screened.page.files] == ["demo-1.0-py3-none-any.whl"]
    assert dict(screened.hidden) == {"exclude_newer": 2}


# -- deny and only ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "name", "expected"),
    [
        (Policy(deny=("evil-*",)), "evil-pkg", "deny"),
        (Policy(deny=("evil-*",)), "good", None),
        (Policy(only=("good", "nice-*")), "nice-one", None),
        (Policy(only=("good",)), "other", "only"),
        (Policy(only=("good",), deny=("good",)), "good", "deny"),
        (Policy(only=()), "good", "only"),
    ],
)
def test_deny_and_only(policy: Policy, name: str, expected: str | None) -> None:
    refusal = refuse_project(policy, NormalizedName(name))
    assert (refusal.policy if refusal else None) == expected


# -- advisories -------------------------------------------------------------------------------


def test_malware_is_hidden_in_audit_mode_too() -> None:
    index = advisories(
        osv("MAL-2026-7", ["1.1"]), osv("GHSA-x", ["1.2"], database_specific={"severity": "HIGH"})
    )
    block = Policy(advisories=Path("osv"), block_severity="high")
    audit = Policy(advisories=Path("osv"), block_severity="high", advisory_mode="audit")
    assert refusal_of(block, "1.1", 100, index) == "advisory"
    assert refusal_of(block, "1.2", 100, index) == "advisory"
    assert refusal_of(audit, "1.1", 100, index) == "advisory"
    verdict = Judge(audit, NOW, index).file(NAME, link("1.2"), 0)
    assert verdict.refusal is None and verdict.audited == ("GHSA-x",)


def test_severity_below_the_threshold_and_waivers() -> None:
    index = advisories(
        osv("GHSA-low", ["1.0"], database_specific={"severity": "MODERATE"}), osv("MAL-w", ["1.1"])
    )
    assert (
        refusal_of(Policy(advisories=Path("osv"), block_severity="high"), "1.0", 9, index) is None
    )
    assert (
        refusal_of(Policy(advisories=Path("osv"), block_severity="moderate"), "1.0", 9, index)
        == "advisory"
    )
    assert refusal_of(Policy(advisories=Path("osv")), "1.0", 9, index) is None  # malware only
    waived = Policy(advisories=Path("osv"), waivers=frozenset({"MAL-w"}))
    assert refusal_of(waived, "1.1", 9, index) is None


@pytest.mark.parametrize(
    ("events", "affected"),
    [
        ([{"introduced": "0"}, {"fixed": "1.1"}], {"1.0"}),
        ([{"introduced": "1.1"}], {"1.1", "1.2", "2.0"}),
        ([{"introduced": "1.0"}, {"last_affected": "1.1"}], {"1.0", "1.1"}),
        (
            [{"introduced": "1.0"}, {"fixed": "1.1"}, {"introduced": "1.2"}, {"fixed": "2.0"}],
            {"1.0", "1.2"},
        ),
        ([{"fixed": "1.2"}, {"introduced": "1.1"}], {"1.1"}),  # events in any order
        ([{"introduced": "0"}, {"limit": "1.2"}], {"1.0", "1.1"}),
    ],
)
def test_ecosystem_ranges(events: list[dict[str, str]], affected: set[str]) -> None:
    document = osv("GHSA-r", ranges=[{"type": "ECOSYSTEM", "events": events}])
    index = advisories(document)
    hit = {v for v in ("1.0", "1.1", "1.2", "2.0") if index.affecting(NAME, Version(v))}
    assert hit == affected


def test_severity_from_github_or_from_the_cvss_vector() -> None:
    def severity(**extra: Any) -> str | None:
        return parse_advisory(osv("GHSA-s", ["1.0"], **extra))[0][1].advisory.severity

    assert severity(database_specific={"severity": "CRITICAL"}) == "critical"
    v3 = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
    assert severity(severity=v3) == "critical"
    v3_medium = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:L/UI:R/S:U/C:L/I:L/A:N"}]
    assert severity(severity=v3_medium) in ("low", "moderate")
    v4 = [
        {
            "type": "CVSS_V4",
            "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:L/VA:N/SC:N/SI:N/SA:N",
        }
    ]
    assert severity(severity=v4) == "high"
    assert severity(severity=[{"type": "CVSS_V3", "score": "nonsense"}]) is None
    assert severity() is None


def test_what_advisories_say_of_names_and_other_ecosystems() -> None:
    document = osv("PYSEC-1", ["1.0", "not a version"])
    document["affected"].append(
        {"package": {"ecosystem": "npm", "name": "demo"}, "versions": ["2.0"]}
    )
    index = advisories(document)
    assert index.affecting(NAME, Version("1.0")) == [Advisory("PYSEC-1", None)]
    assert index.affecting(NAME, Version("2.0")) == []
    assert advisories({**osv("MAL-gone", ["1.0"]), "withdrawn": "2026-01-01T00:00:00Z"}).count == 0


def test_documents_that_are_not_advisories_are_counted_and_skipped() -> None:
    good = json.dumps(osv("MAL-1", ["1.0"])).encode()
    listed = json.dumps([osv("MAL-2", ["1.1"]), {"no": "id"}]).encode()
    index, bad = build_index([good, b"{not json", listed, b'"a string"'])
    assert (index.count, bad) == (2, 3)


# -- the config -------------------------------------------------------------------------------


BASE: dict[str, Any] = {"upstreams": {"pypi": {"mirrors": ["https://m.test/simple/"]}}}
ROUTE = {"projects": ["*"], "upstreams": ["pypi"]}


def test_policies_override_key_by_key_down_to_the_route() -> None:
    config = parse_config({
        **BASE,
        "policy": {"min_age": "7d", "deny": ["evil"], "advisories": "/srv/osv.zip"},
        "indexes": {
            "main": {
                "policy": {"min_age": "1d", "deny": ["worse"]},
                "routes": [
                    {**ROUTE, "projects": ["torch"], "policy": {"allow": ["torch==2.5.1"]}},
                    ROUTE,
                ],
            },
            "plain": {"routes": [ROUTE]},
        },
    })  # fmt: skip
    main, plain = config.indexes
    torch = policy_for(main, NormalizedName("torch"))
    assert (torch.min_age, torch.deny, torch.allow) == (
        DAY,
        ("worse",),
        (Allowed(NormalizedName("torch"), Version("2.5.1")),),
    )
    assert policy_for(main, NormalizedName("numpy")).allow == ()
    assert plain.policy == Policy(min_age=7 * DAY, deny=("evil",), advisories=Path("/srv/osv.zip"))


def test_exclude_newer_quoted_or_not() -> None:
    import yaml

    for text in (
        "2026-11-01T00:00:00Z",
        "'2026-11-01T00:00:00Z'",
        "2026-11-01",
        "2026-11-01 08:00:00+08:00",
    ):
        value = yaml.safe_load(f"v: {text}")["v"]
        policy = parse_config({**BASE, "policy": {"exclude_newer": value}}).indexes[0].policy
        assert policy.exclude_newer == datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"min_age": "a week"}, "policy.min_age: expected a duration"),
        ({"exclude_newer": "last tuesday"}, "policy.exclude_newer: expected an ISO 8601"),
        ({"allow": ["torch>=2"]}, "policy.allow[0]: expected a name or name==version"),
        ({"deny": "evil"}, "policy.deny: expected a list"),
        ({"only": ["bad name!"]}, "policy.only[0]: not a project name or glob"),
        ({"advisory_mode": "warn"}, "policy.advisory_mode: expected one of block, audit"),
        ({"block_severity": "severe"}, "policy.block_severity: expected one of low, moderate"),
        ({"waivers": [""]}, "policy.waivers[0]: expected a non-empty string"),
        ({"min_agee": "7d"}, "policy.min_agee: unknown key"),
    ],
)
def test_policy_errors_name_the_key(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({**BASE, "policy": policy})


def test_index_and_route_policy_errors_name_their_path() -> None:
    with pytest.raises(ConfigError, match=r"indexes\.main\.routes\[0\]\.policy\.min_age"):
        parse_config(
            {**BASE, "indexes": {"main": {"routes": [{**ROUTE, "policy": {"min_age": "x"}}]}}}
        )


# -- timestamps -------------------------------------------------------------------------------


def test_timestamps() -> None:
    assert parse_timestamp(date(2026, 11, 1)) == parse_timestamp("2026-11-01T00:00:00Z")
    assert upload_time("2026-11-01T00:00:00.123456Z") == pytest.approx(
        parse_timestamp("2026-11-01") + 0.123456
    )
    assert upload_time("yesterday") is None and upload_time(None) is None
    assert (
        format_upload_time(parse_timestamp("2026-11-01T12:00:00Z")) == "2026-11-01T12:00:00.000000Z"
    )


def test_introduced_zero_covers_pre_releases_below_zero() -> None:
    index = advisories(
        osv("MAL-z", ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}])
    )
    assert all(index.affecting(NAME, Version(v)) for v in ("0a1", "0.0.dev1", "0", "99"))


@pytest.mark.parametrize(
    "filename", ["demo-1.0.tar.bz2", "demo-1.0.tgz", "demo-1.0-py2.7.egg", "demo-1.0.exe"]
)
def test_files_of_older_forms_or_unreadable_versions_are_judged_too(filename: str) -> None:
    """pip and uv still install `.tar.bz2` sdists; a file whose version cannot be read at all
    counts as named by every advisory of its project (unknown is not safe)."""
    index = advisories(osv("MAL-1", ["1.0"]))
    judge = Judge(Policy(advisories=Path("osv")), NOW, index)
    refusal = judge.file(NAME, FileLink(filename, f"https://m.test/{filename}"), 0).refusal
    assert refusal is not None and refusal.policy == "advisory"
    clean = judge.file(NAME, FileLink("demo-2.0.tar.bz2", "https://m.test/demo-2.0.tar.bz2"), 0)
    assert clean.refusal is None


def test_a_waiver_names_an_advisory_by_id_or_alias() -> None:
    index = advisories(
        osv("GHSA-aaaa", ["1.0"], aliases=["PYSEC-1"], database_specific={"severity": "HIGH"}),
        osv("PYSEC-1", ["1.0"], aliases=["GHSA-aaaa"], database_specific={"severity": "HIGH"}),
    )
    for waiver in ("GHSA-aaaa", "PYSEC-1"):
        policy = Policy(advisories=Path("osv"), block_severity="high", waivers=frozenset({waiver}))
        assert refusal_of(policy, "1.0", 9, index) is None
