"""utils/output.py: where each kind of output goes, colour rules, formats."""

from __future__ import annotations

import io
import json

import pytest

from utils import output


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def streams():
    out, err = io.StringIO(), io.StringIO()
    yield out, err
    output.configure_output(json_mode=False)


def everything_printed() -> None:
    output.print_header("Title")
    output.print_section("Section")
    output.print_line("a line")
    output.print_info("info")
    output.print_success("done")
    output.print_key_values({"Key": "value", "Longer key": 2})
    output.print_table(["A", "Bee"], [["1", "two"], ["three", "4"]])
    output.print_warning("careful")
    output.print_error("failed", details=["why"], hints=["what to do"])


def test_human_mode_progress_on_stdout_problems_on_stderr(streams):
    out, err = streams
    output.configure_output(json_mode=False, env={}, stdout=out, stderr=err)
    everything_printed()
    assert "Title" in out.getvalue() and "--- Section ---" in out.getvalue()
    assert "✓ done" in out.getvalue() and "  info" in out.getvalue()
    assert "careful" not in out.getvalue() and "failed" not in out.getvalue()
    assert "⚠ WARNING: careful" in err.getvalue()
    assert "ERROR: failed\n  why\nWhat to do:\n  - what to do\n" in err.getvalue()


def test_json_mode_keeps_stdout_for_the_one_document(streams):
    out, err = streams
    output.configure_output(json_mode=True, env={}, stdout=out, stderr=err)
    assert output.is_json_mode()
    everything_printed()
    output.print_json_result({"answer": 42}, header="Result")
    assert json.loads(out.getvalue()) == {"answer": 42}
    assert "Title" in err.getvalue() and "Result" not in err.getvalue()


def test_json_result_gets_a_header_in_human_mode(streams):
    out, err = streams
    output.configure_output(json_mode=False, env={}, stdout=out, stderr=err)
    output.print_json_result({"when": object()}, header="Result")
    text = out.getvalue()
    assert "--- Result ---" in text and '"when": "<object object' in text


def test_colour_only_on_a_terminal_and_never_with_no_color(streams):
    tty = Tty()
    output.configure_output(json_mode=False, env={}, stdout=tty, stderr=tty)
    output.print_success("ok")
    assert "\033[32m" in tty.getvalue()
    plain = io.StringIO()
    output.configure_output(json_mode=False, env={}, stdout=plain, stderr=plain)
    output.print_success("ok")
    assert "\033[" not in plain.getvalue()
    tty = Tty()
    output.configure_output(json_mode=False, env={"NO_COLOR": "1"}, stdout=tty, stderr=tty)
    output.print_success("ok")
    output.print_error("bad")
    assert "\033[" not in tty.getvalue()


def test_empty_no_color_does_not_disable_colour(streams):
    tty = Tty()
    output.configure_output(json_mode=False, env={"NO_COLOR": ""}, stdout=tty, stderr=tty)
    output.print_success("ok")
    assert "\033[32m" in tty.getvalue()


def test_table_columns_are_aligned(streams):
    out, err = streams
    output.configure_output(json_mode=False, env={}, stdout=out, stderr=err)
    output.print_table(["Name", "N"], [["short", 1], ["much longer", 22]])
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Name         N")
    assert lines[1] == "-----------  --"
    assert lines[3].startswith("much longer  22")


def test_key_values_are_aligned(streams):
    out, err = streams
    output.configure_output(json_mode=False, env={}, stdout=out, stderr=err)
    output.print_key_values({"A": 1, "Longer": "x"})
    assert out.getvalue() == "  A      : 1\n  Longer : x\n"


@pytest.mark.parametrize("seconds, text", [
    (0, "0.0s"), (-3, "0.0s"), (12.34, "12.3s"), (59.94, "59.9s"), (59.96, "1m 00s"),
    (61, "1m 01s"), (3599.4, "59m 59s"), (3600, "1h 00m 00s"), (3725, "1h 02m 05s"),
])
def test_format_duration(seconds, text):
    assert output.format_duration(seconds) == text


@pytest.mark.parametrize("size, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KB"), (1536, "1.5 KB"),
    (5 * 1024 ** 2, "5.0 MB"), (3 * 1024 ** 3, "3.0 GB"), (2 * 1024 ** 5, "2048.0 TB"),
])
def test_format_bytes(size, text):
    assert output.format_bytes(size) == text
