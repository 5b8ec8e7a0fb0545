"""PATCH bodies as JSON merge patches (RFC 7396) over an entity's representation, validated by the same
type as a PUT body, so a partial change meets the same rules as a whole one."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from api.http.problems import ApiProblem, FieldError

Body = TypeVar("Body", bound=BaseModel)

PATCH_DESCRIPTION = (
    "A JSON merge patch (RFC 7396) of the entity: the fields to change; null resets a field to its "
    "default; lists (profiles, residency) are replaced whole."
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge member by member, null removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patched(
    current: dict[str, Any], patch: dict[str, Any], *, read_only: set[str], body_type: type[Body]
) -> Body:
    """The entity with ``patch`` applied, as a ``body_type``; 422 naming each bad field (``body.x``)."""
    touched = sorted(read_only & set(patch))
    if touched:
        raise ApiProblem(
            422,
            "read-only fields cannot be patched: " + ", ".join(touched),
            errors=[FieldError(field=f"body.{name}", message="read-only") for name in touched],
        )
    document = merge_patch({key: value for key, value in current.items() if key not in read_only}, patch)
    try:
        return body_type.model_validate(document)
    except ValidationError as exc:
        errors = [
            FieldError(
                field=".".join(["body", *(str(part) for part in item["loc"])]),
                message=item["msg"].removeprefix("Value error, "),
            )
            for item in exc.errors(include_url=False)
        ]
        detail = "the patched entity is not valid: " + "; ".join(
            f"{e.field}: {e.message}" for e in errors[:5]
        )
        raise ApiProblem(422, detail, errors=errors) from exc
