"""Canonical gpuplan tags mapped to what each provider allows, and read back.

Canonical keys are ``gpuplan:<name>`` (``base.CANONICAL_TAG_KEY``); values are up to 256 characters.

- **AWS** tags and **Azure** tags take them as they are: AWS allows ``:`` in keys (keys up to 128
  characters, values up to 256); Azure tag names forbid ``<>%&\\?/`` (none of which a canonical key holds)
  and allow 512 characters, values 256. ``TagCodec`` checks the limits and passes keys and values through.
- **GCP labels** (and SkyPilot cluster labels, which must be valid on every cloud SkyPilot labels) allow
  only lower-case letters, digits, ``_`` and ``-``, 63 characters, keys starting with a letter, at most 64
  labels. ``LabelCodec`` writes the key ``gpuplan:offer`` as ``gpuplan-offer`` and escapes every value
  character other than ``[a-z0-9-]`` as ``_`` and two hex digits per UTF-8 byte (``/`` -> ``_2f``,
  ``_`` -> ``_5f``, ``A`` -> ``_41``); a value longer than 63 characters after escaping continues in
  ``gpuplan-offer-1``, ``gpuplan-offer-2`` ... Decoding reverses both exactly.

Decoding ignores every tag that is not gpuplan's (``Name``, ``goog-...``, a team's own tags).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.provisioners.base import CANONICAL_TAG_KEY, TAG_PREFIX, check_canonical_tags


class TagMappingError(ValueError):
    """Canonical tags that cannot be written as the provider's tags (too many, too long)."""


@dataclass(frozen=True)
class TagCodec:
    """Keys and values as they are, within the provider's limits (AWS, Azure)."""

    provider: str
    max_key_chars: int
    max_value_chars: int
    forbidden_key_chars: str = ""
    max_tags: int = 50

    def encode(self, tags: Mapping[str, str]) -> dict[str, str]:
        check_canonical_tags(tags)
        if len(tags) > self.max_tags:
            raise TagMappingError(f"{self.provider}: {len(tags)} tags, the limit is {self.max_tags}")
        for key, value in tags.items():
            if len(key) > self.max_key_chars:
                raise TagMappingError(f"{self.provider}: tag key {key!r} is longer than {self.max_key_chars}")
            if bad := set(key) & set(self.forbidden_key_chars):
                raise TagMappingError(f"{self.provider}: tag key {key!r} holds {''.join(sorted(bad))!r}")
            if len(value) > self.max_value_chars:
                raise TagMappingError(
                    f"{self.provider}: tag {key} value is longer than {self.max_value_chars} characters"
                )
        return dict(tags)

    def decode(self, raw: Mapping[str, str]) -> dict[str, str]:
        return {
            key: value
            for key, value in raw.items()
            if key.startswith(TAG_PREFIX) and CANONICAL_TAG_KEY.match(key)
        }


AWS_TAGS = TagCodec("aws", max_key_chars=128, max_value_chars=256, max_tags=50)
"""EC2: 50 tags per resource, keys 128 and values 256 Unicode characters; the ``aws:`` prefix is reserved."""

AZURE_TAGS = TagCodec("azure", max_key_chars=512, max_value_chars=256, forbidden_key_chars="<>%&\\?/")
"""Azure Resource Manager: 50 tags per resource, names 512 characters without ``<>%&\\?/``, values 256."""


_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_LABEL_KEY = re.compile(r"^gpuplan-([a-z][a-z0-9_]*)(?:-([1-9][0-9]*))?$")
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class LabelCodec:
    """GCP-style labels: ``[a-z0-9_-]``, 63 characters, keys start with a letter, at most ``max_labels``."""

    provider: str
    max_chars: int = 63
    max_labels: int = 64

    def encode(self, tags: Mapping[str, str]) -> dict[str, str]:
        check_canonical_tags(tags)
        labels: dict[str, str] = {}
        for key, value in tags.items():
            base = "gpuplan-" + key.removeprefix(TAG_PREFIX)
            for index, chunk in enumerate(self._chunks(escape_label_value(value))):
                labels[base if index == 0 else f"{base}-{index}"] = chunk
        if len(labels) > self.max_labels:
            raise TagMappingError(
                f"{self.provider}: the tags need {len(labels)} labels, the limit is {self.max_labels}"
            )
        for label, value in labels.items():  # the invariants the provider checks, checked here first
            if not _LABEL.match(label) or not _LABEL_VALUE.match(value):
                raise TagMappingError(f"{self.provider}: label {label}={value} is not valid")
        return labels

    def _chunks(self, escaped: str) -> list[str]:
        chunks: list[str] = []
        start = 0
        while True:
            end = min(start + self.max_chars, len(escaped))
            # never split an escape: "_" and its two hex digits stay in one chunk
            for back in (1, 2):
                if end < len(escaped) and end - back >= start and escaped[end - back] == "_":
                    end -= back
                    break
            chunks.append(escaped[start:end])
            if end >= len(escaped):
                return chunks
            start = end

    def decode(self, raw: Mapping[str, str]) -> dict[str, str]:
        parts: dict[str, dict[int, str]] = defaultdict(dict)
        for label, value in raw.items():
            found = _LABEL_KEY.match(label)
            if found:
                parts[found.group(1)][int(found.group(2) or 0)] = value
        tags: dict[str, str] = {}
        for name, chunks in parts.items():
            if 0 not in chunks or sorted(chunks) != list(range(len(chunks))):
                continue  # a label set gpuplan did not write whole: not one of its tags
            try:
                value = unescape_label_value("".join(chunks[index] for index in range(len(chunks))))
            except ValueError:
                continue
            key = TAG_PREFIX + name
            if CANONICAL_TAG_KEY.match(key):
                tags[key] = value
        return tags


def escape_label_value(value: str) -> str:
    out: list[str] = []
    for char in value:
        if char in _PLAIN:
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def unescape_label_value(escaped: str) -> str:
    data = bytearray()
    index = 0
    while index < len(escaped):
        char = escaped[index]
        if char == "_":
            hex_digits = escaped[index + 1 : index + 3]
            if len(hex_digits) != 2 or not re.fullmatch(r"[0-9a-f]{2}", hex_digits):
                raise ValueError(f"bad escape at {index} in {escaped!r}")
            data.append(int(hex_digits, 16))
            index += 3
        elif char in _PLAIN:
            data.extend(char.encode())
            index += 1
        else:
            raise ValueError(f"character {char!r} cannot appear in an encoded label value")
    return data.decode("utf-8")


GCP_LABELS = LabelCodec("gcp")
SKYPILOT_LABELS = LabelCodec("skypilot")
