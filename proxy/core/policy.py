"""Supply-chain policy: which projects an index serves, and which of their files it shows.

A policy is set at the top of the config, per index and per route, each level overriding the
one above key by key. What it refuses is never served: a refused project is not asked of any
upstream; a hidden file is left off pages (HTML, JSON and `versions`) and its file and
metadata URLs answer 404 saying which key (or advisory) hid it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from packaging.version import Version

from .advisories import Advisory, AdvisoryIndex, Severity
from .model import FileLink, NormalizedName, ProjectPage, name_and_version
from .units import human_duration

PolicyKey = Literal["min_age", "exclude_newer", "advisory", "deny", "only"]
Mode = Literal["block", "audit"]
MODES: tuple[Mode, ...] = ("block", "audit")


@dataclass(frozen=True)
class Allowed:
    """A break-glass entry: every version of a project, or one (`name==version`)."""

    name: NormalizedName
    version: Version | None = None

    def covers(self, name: NormalizedName, version: Version | None) -> bool:
        return name == self.name and self.version in (None, version)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}=={self.version}"


@dataclass(frozen=True)
class Policy:
    min_age: float | None = None  # seconds a file must have been public
    exclude_newer: float | None = None  # a timestamp: files uploaded after it are hidden
    allow: tuple[Allowed, ...] = ()  # exempt from the cooldown (not from advisories or deny)
    deny: tuple[str, ...] = ()  # names or globs, never served
    only: tuple[str, ...] | None = None  # if set: the names or globs served, and no others
    advisories: Path | None = None
    advisory_mode: Mode = "block"
    block_severity: Severity | None = None  # None: only malware is hidden
    waivers: frozenset[str] = frozenset()  # advisory ids that hide nothing

    @property
    def screens_files(self) -> bool:
        return (
            self.min_age is not None
            or self.exclude_newer is not None
            or self.advisories is not None
        )

    @property
    def screens_names(self) -> bool:
        return bool(self.deny) or self.only is not None


@dataclass(frozen=True)
class Refusal:
    """Why something is not served: the config key (or `advisory`) and, for the 404 body,
    the reason in words."""

    policy: PolicyKey
    reason: str


def refuse_project(policy: Policy, name: NormalizedName) -> Refusal | None:
    """`deny` wins over everything; with `only`, a name it does not match is refused."""
    denied = next((p for p in policy.deny if fnmatchcase(name, p)), None)
    if denied is not None:
        return Refusal("deny", f"{name} is refused by policy: deny ({denied!r})")
    if policy.only is not None and not any(fnmatchcase(name, p) for p in policy.only):
        return Refusal("only", f"{name} is refused by policy: not in only")
    return None


@dataclass(frozen=True)
class Verdict:
    """What the policy says of one file: its refusal, if hidden, and the advisories that
    would have hidden it but for `audit` mode."""

    refusal: Refusal | None = None
    audited: tuple[str, ...] = ()


@dataclass(frozen=True)
class Judge:
    """The policy at one moment: `now`, and the advisories loaded for the policy's file."""

    policy: Policy
    now: float
    advisories: AdvisoryIndex = field(default_factory=AdvisoryIndex)

    def file(self, name: NormalizedName, link: FileLink, uploaded: float) -> Verdict:
        """`uploaded`: the file's upload time, or when the proxy first listed it."""
        parsed = name_and_version(link.filename)
        version = parsed[1] if parsed else None
        verdict = self._advisories(name, link.filename, version)
        if verdict.refusal is not None:
            return verdict
        if any(a.covers(name, version) for a in self.policy.allow):
            return verdict
        refusal = self._cooldown(link.filename, uploaded)
        return replace(verdict, refusal=refusal) if refusal else verdict

    def _advisories(self, name: NormalizedName, filename: str, version: Version | None) -> Verdict:
        if self.policy.advisories is None:
            return Verdict()
        named = [a for a in self.advisories.affecting(name, version) if not self._waived(a)]
        malware = [a for a in named if a.malware]
        severe = [a for a in named if not a.malware and self._blocks(a)]
        if self.policy.advisory_mode == "audit":  # malware is hidden all the same
            refused, audited = malware, tuple(a.id for a in severe)
        else:
            refused, audited = malware + severe, ()
        if not refused:
            return Verdict(audited=audited)
        ids = ", ".join(a.id for a in refused)
        unread = " (its version cannot be read)" if version is None else ""
        reason = f"{filename} is hidden by advisory {ids}{unread}"
        return Verdict(Refusal("advisory", reason), audited)

    def _waived(self, advisory: Advisory) -> bool:
        """Waived by its id or any of its aliases (a GHSA id waives its PYSEC twin)."""
        return not self.policy.waivers.isdisjoint({advisory.id, *advisory.aliases})

    def _blocks(self, advisory: Advisory) -> bool:
        level = self.policy.block_severity
        return level is not None and advisory.at_least(level)

    def _cooldown(self, filename: str, uploaded: float) -> Refusal | None:
        policy = self.policy
        if policy.exclude_newer is not None and uploaded > policy.exclude_newer:
            return Refusal("exclude_newer", f"{filename} is hidden by policy: exclude_newer")
        if policy.min_age is not None and self.now - uploaded < policy.min_age:
            age = human_duration(max(self.now - uploaded, 0))
            return Refusal(
                "min_age",
                f"{filename} is hidden by policy: min_age ({human_duration(policy.min_age)};"
                f" uploaded {age} ago)",
            )
        return None


@dataclass(frozen=True)
class Screened:
    """A page with its hidden files left out: what was hidden, by policy, and the
    advisories audit mode let through."""

    page: ProjectPage
    hidden: Counter[PolicyKey]
    audited: tuple[str, ...] = ()


def screen(judge: Judge, page: ProjectPage, uploaded: Callable[[FileLink], float]) -> Screened:
    kept, hidden, audited = [], Counter[PolicyKey](), list[str]()
    for link in page.files:
        verdict = judge.file(page.name, link, uploaded(link))
        audited += verdict.audited
        if verdict.refusal is None:
            kept.append(link)
        else:
            hidden[verdict.refusal.policy] += 1
    return Screened(replace(page, files=tuple(kept)), hidden, tuple(dict.fromkeys(audited)))
