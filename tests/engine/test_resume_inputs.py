"""A training stage resumes only an interrupted run of the same job; new inputs start over."""

from __future__ import annotations

from slowfast.engine.checkpointing import inputs_fingerprint, resume_allowed


def test_resume_is_allowed_only_for_the_same_params_and_file_contents(tmp_path):
    data = tmp_path / "manifest.json"
    data.write_text('{"videos": 1}')
    out = tmp_path / "run"
    first = inputs_fingerprint(params={"lr": 0.1}, files=(data,))
    assert not resume_allowed(out, first)  # nothing recorded yet: a new job
    assert resume_allowed(out, inputs_fingerprint(params={"lr": 0.1}, files=(data,)))  # interrupted, same job
    assert not resume_allowed(out, inputs_fingerprint(params={"lr": 0.2}, files=(data,)))  # new params
    data.write_text('{"videos": 2}')
    assert not resume_allowed(out, inputs_fingerprint(params={"lr": 0.2}, files=(data,)))  # new data
