"""A server's warning filters (Python's defaults, unless its operator chose some) and the ids it
gives requests and log records (UUID version 7: time first, so the store's indexes grow at one end)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
import warnings

from workbench._ids import new_id
from workbench.serving.server import server_warning_filters


def _described(filters: list[tuple]) -> list[tuple[str, str, str]]:
    def text(value: object) -> str:
        return "" if value is None else getattr(value, "pattern", value)  # type: ignore[return-value]

    return [(action, category.__name__, text(module)) for action, _message, category, module, _ in filters]


def test_a_server_warns_as_a_fresh_python_does_whatever_its_imports_added() -> None:
    fresh = subprocess.run([sys.executable, "-c", "import warnings; print([(a, c.__name__, m or '') for a, _, c, m, _ "
                            "in warnings.filters])"], capture_output=True, text=True, check=True).stdout
    with warnings.catch_warnings():
        import scipy.special  # noqa: F401 - libraries add filters as they are imported
        import sklearn.ensemble  # noqa: F401

        warnings.simplefilter("always", UserWarning)
        server_warning_filters()
        assert str(_described(warnings.filters)) == fresh.strip()
        with warnings.catch_warnings(record=True) as caught:
            for _ in range(3):
                warnings.warn("the model says so", UserWarning)  # one place: shown once
        assert [str(w.message) for w in caught] == ["the model says so"]


def test_filters_the_operator_chose_are_left_alone() -> None:
    code = ("import warnings\nfrom workbench.serving.server import server_warning_filters\n"
            "server_warning_filters()\ntry:\n    warnings.warn('x', UserWarning)\nexcept UserWarning:\n    print('raised')")
    out = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "raised"


def test_ids_are_uuid7_and_later_ones_sort_after() -> None:
    first = new_id()
    time.sleep(0.002)
    ids = [new_id() for _ in range(1000)]
    assert all(len(i) == 32 and uuid.UUID(i).version == 7 and uuid.UUID(i).hex == i for i in [first, *ids])
    assert len(set(ids)) == len(ids)
    assert all(first < i for i in ids)
    assert abs(int(first[:12], 16) / 1000 - time.time()) < 5  # milliseconds since 1970 come first
