"""utils/contract.py: requests, payload size and every way an answer can break the contract."""

from __future__ import annotations

import copy

import pytest

from utils.contract import (
    MAX_PAYLOAD_BYTES,
    check_payload_size,
    parse_json_text,
    response_problems,
    validate_request,
    validate_response,
)
from utils.errors import ContractError, ValidationError

GOOD = {"predictions": ["qc_pass", "qc_fail"], "probabilities": [[0.95, 0.05], [0.3, 0.7]],
        "class_indices": [0, 1], "confidence_scores": [0.95, 0.7]}
LABELS = ["qc_pass", "qc_fail"]


def test_parse_json_text_names_line_and_column():
    assert parse_json_text('{"data": [[1]]}', "input") == {"data": [[1]]}
    with pytest.raises(ValidationError) as caught:
        parse_json_text('{"data": [[1, 2]\n', "sample.json")
    assert caught.value.message == ("Invalid JSON in sample.json: Expecting ',' delimiter at "
                                    "line 2, column 1")


def test_valid_request_rows():
    assert validate_request({"data": [[1, 2.5], [3, -4e3]]}) == [[1, 2.5], [3, -4e3]]


def test_the_sdks_bare_array_of_rows_is_a_valid_request():
    assert validate_request([[1, 2.5], [3, -4e3]]) == [[1, 2.5], [3, -4e3]]


@pytest.mark.parametrize("payload, expected", [
    ("[[1, 2]]", "missing the 'data' key"),
    (7, "missing the 'data' key"),
    ([], "the array must be a non-empty list of rows"),
    ([1, 2], "every entry of the array must be a list of numbers"),
    ([[1, "2"]], "non-numeric value '2'"),
    ({"rows": [[1]]}, "missing the 'data' key"),
    ({"data": []}, "non-empty list"),
    ({"data": "1,2"}, "non-empty list"),
    ({"data": [1, 2]}, "must be a list of numbers"),
    ({"data": [[]]}, "rows must not be empty"),
    ({"data": [[1, 2], [3]]}, "row 1 has 1 values, row 0 has 2"),
    ({"data": [[1, "2"]]}, "non-numeric value '2'"),
    ({"data": [[1, True]]}, "non-numeric value True"),
    ({"data": [[1, None]]}, "non-numeric value None"),
    ({"data": [[1, float("nan")]]}, "non-numeric value nan"),
    ({"data": [[float("inf")]]}, "non-numeric value inf"),
])
def test_invalid_requests(payload, expected):
    with pytest.raises(ValidationError) as caught:
        validate_request(payload, source="the request")
    assert expected in caught.value.message and "the request" in caught.value.message


def test_payload_size_limit_is_sagemakers():
    assert MAX_PAYLOAD_BYTES == 6 * 1024 * 1024
    check_payload_size(b"x" * MAX_PAYLOAD_BYTES)
    with pytest.raises(ValidationError, match="6,291,457 bytes"):
        check_payload_size(b"x" * (MAX_PAYLOAD_BYTES + 1))


def test_a_good_answer_has_no_problems():
    assert response_problems(GOOD, 2) == []
    assert response_problems(GOOD, 2, LABELS) == []
    validate_response(GOOD, 2, LABELS)


def broken(**changes):
    answer = copy.deepcopy(GOOD)
    answer.update(changes)
    return answer


@pytest.mark.parametrize("answer, rows, expected", [
    ([1, 2], 2, "must be a JSON object, got list"),
    ({"predictions": []}, 2, "missing key(s): probabilities, class_indices, confidence_scores"),
    (GOOD, 3, "'predictions' has 2 entries, expected 3"),
    (broken(probabilities="x"), 2, "'probabilities' has -1 entries"),
    (broken(probabilities=[[0.5, 0.6], [0.3, 0.7]], confidence_scores=[0.6, 0.7]), 2,
     "row 0: probabilities sum to 1.100000, not 1"),
    (broken(probabilities=[[1.5, -0.5], [0.3, 0.7]]), 2, "row 0: probabilities must be"),
    (broken(probabilities=[[], [0.3, 0.7]]), 2, "row 0: probabilities must be"),
    (broken(class_indices=[2, 1]), 2, "row 0: class index 2 is out of range 0..1"),
    (broken(class_indices=[True, 1]), 2, "row 0: class index True is out of range"),
    (broken(confidence_scores=[0.05, 0.7]), 2,
     "row 0: confidence 0.05 is not the predicted class's probability 0.95"),
])
def test_contract_breaches(answer, rows, expected):
    problems = response_problems(answer, rows)
    assert any(expected in problem for problem in problems), problems


def test_predictions_must_match_the_labels():
    problems = response_problems(broken(predictions=["qc_fail", "qc_fail"]), 2, LABELS)
    assert problems == ["row 0: prediction 'qc_fail' does not match label 'qc_pass' of class "
                        "index 0"]


def test_more_classes_than_labels_is_a_problem():
    # Three probabilities for two labels: class index 2 has no label at all.
    answer = {"predictions": ["?"], "probabilities": [[0.1, 0.1, 0.8]], "class_indices": [2],
              "confidence_scores": [0.8]}
    [problem] = response_problems(answer, 1, LABELS)
    assert "3 probabilities for 2 labels (qc_pass, qc_fail)" in problem


def test_fewer_classes_than_labels_is_a_problem():
    [problem] = response_problems(GOOD, 2, ["a", "b", "c"])[:1]
    assert "2 probabilities for 3 labels" in problem


def test_long_lists_of_problems_are_cut_short():
    rows = 30
    answer = {"predictions": ["x"] * rows, "probabilities": [[0.2, 0.2]] * rows,
              "class_indices": [0] * rows, "confidence_scores": [0.2] * rows}
    problems = response_problems(answer, rows)
    assert len(problems) == 11 and problems[-1] == "(further problems not listed)"


def test_validate_response_raises_a_contract_error():
    with pytest.raises(ContractError) as caught:
        validate_response(broken(class_indices=[5, 1]), 2, source="endpoint qc")
    assert caught.value.exit_code == 4
    assert "The answer from endpoint qc breaks the inference contract" == caught.value.message
