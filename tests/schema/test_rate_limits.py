"""Every root field declares its rate-limit bucket, and the stricter ones are where the
issue puts them: a new root field without `@limited` fails here."""

from __future__ import annotations

from strawberry.permission import PermissionExtension

from schema._limits import Bucket, RateLimit, bucket_of
from tests.schema.test_authorization import root_fields

STRICT = {
    "Mutation.login": Bucket.AUTH,
    "Mutation.register": Bucket.AUTH,
    "Mutation.refreshToken": Bucket.AUTH,
    "Mutation.changePassword": Bucket.SENSITIVE,
    "Mutation.deleteAccount": Bucket.SENSITIVE,
    "Mutation.saveCredentials": Bucket.SENSITIVE,
    "Mutation.deleteCredentials": Bucket.SENSITIVE,
}


def test_every_root_field_declares_a_bucket():
    missing = [name for name, field in root_fields().items() if bucket_of(field) is None]

    assert missing == []


def test_sign_in_password_and_credential_fields_have_the_strict_buckets():
    buckets = {name: bucket_of(field) for name, field in root_fields().items()}

    assert {name: buckets[name] for name in STRICT} == STRICT
    others = {name for name, bucket in buckets.items() if bucket in (Bucket.AUTH, Bucket.SENSITIVE)}
    assert others == set(STRICT)


def test_the_limit_runs_before_the_permission():
    # The last extension is the outermost: it runs first, before any source is asked.
    for name, field in root_fields().items():
        kinds = [type(extension) for extension in field.extensions]
        assert kinds[-1] is RateLimit, name
        assert PermissionExtension in kinds, name
