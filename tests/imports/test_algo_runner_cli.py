"""`gateway import algo-runner` as a real process: killed at several points and run again,
it ends as one uninterrupted run does; the dry run and the exit codes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from datasources import Sources
from gateway.core.crypto import SecretBox
from gateway.imports.algo_runner import ImportOptions, import_algo_runner
from tests.helpers import run
from tests.imports.conftest import Counts, kill_when, snapshot
from tests.imports.legacy import LegacyUser, legacy_users

pytestmark = pytest.mark.slow


async def counts(sources: Sources) -> Counts:
    return {
        "users": await sources.users.db.users.count_documents({}),
        "strategies": await sources.strategies.db.strategies.count_documents({}),
        "credentials": await sources.credentials.db.credentials.count_documents({}),
        "checkpoints": await sources.users.db.imports.count_documents({}),
    }


async def test_killed_at_several_points_and_run_again_it_ends_as_one_uninterrupted_run(
    legacy, sources, settings, tmp_path
):
    users = legacy_users(2000, seed=5)
    await legacy.fill(users)
    box = SecretBox.from_settings(settings)
    reference = await import_algo_runner(
        sources=sources, box=box, options=ImportOptions(source_uri=legacy.uri, batch_size=100)
    )
    expected = await snapshot(sources, box)
    await sources.clear()

    log = tmp_path / "import.log"
    points: list[Callable[[Counts], bool]] = [
        lambda c: c["credentials"] > 0,  # inside the first batch, before its users
        lambda c: c["users"] >= 300,
        lambda c: c["strategies"] > 2 * c["users"] + 100,  # a batch's strategies, not its users
        lambda c: c["users"] >= 1200,
        # The import pass is over (its checkpoint dropped): verifying.
        lambda c: c["users"] == len(expected["users"]) and c["checkpoints"] == 0,
    ]
    args = ["import", "algo-runner", "--from", legacy.uri, "--batch-size", "100"]
    killed_at = [
        await kill_when(settings, args, log, point, lambda: counts(sources)) for point in points
    ]
    final = run(settings, "import", "algo-runner", "--from", legacy.uri)

    assert killed_at[0]["users"] < len(expected["users"]), killed_at
    assert final.returncode == 1, final.stderr  # the generated data has users to refuse
    assert "users whose verification failed" not in final.stderr
    assert f"users: {reference.tallies['users'].legacy} / " in final.stderr
    assert await snapshot(sources, box) == expected
    assert (await counts(sources))["checkpoints"] == 0
    # Killed mid-way (not ended by themselves), each after the last left its checkpoint.
    assert all(at["users"] < len(expected["users"]) for at in killed_at[:4]), killed_at
    assert all(at["checkpoints"] == 1 for at in killed_at[1:4]), killed_at
    assert "Traceback" not in log.read_text()


def clean_users(count: int) -> list[LegacyUser]:
    """Generated users the import takes whole: a verifiable hash and an email of their own."""
    seen, kept = set(), []
    for user in legacy_users(count, seed=8):
        email = user.doc["email"].strip().lower()
        if user.password is not None and email not in seen:
            kept.append(user)
        seen.add(email)
    return kept


async def test_a_dry_run_then_a_run_then_clearing_exit_zero_when_every_user_is_verified(
    legacy, sources, settings
):
    users = clean_users(200)
    await legacy.fill(users)

    dry = run(settings, "import", "algo-runner", "--from", legacy.uri, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would write: {len(users)} users" in dry.stderr
    assert "dry run" in dry.stderr
    assert (await counts(sources))["users"] == 0

    refused = run(
        settings, "import", "algo-runner", "--from", legacy.uri, "--dry-run", "--clear-source"
    )
    assert refused.returncode == 2

    real = run(settings, "import", "algo-runner", "--from", legacy.uri, "--clear-source")
    assert real.returncode == 0, real.stderr
    assert "imported and verified" in real.stderr
    assert f"cleared from the source: {len(users)} users" in real.stderr
    secrets = [u.doc["accessToken"] for u in users if u.doc.get("accessToken")]
    assert secrets
    for output in (dry.stderr + dry.stdout, real.stderr + real.stdout):
        assert not any(secret in output for secret in secrets)
    assert await legacy.db.users.count_documents({"accessToken": {"$exists": True}}) == 0
