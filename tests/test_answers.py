"""One definition of what an answer says: every scorer reads numbers and words the same way.

Each expected value below was counted by hand.
"""

import pytest

from ftlab import answers, rlhf
from ftlab.answers import (
    as_number,
    count_words,
    gives_number,
    has_word,
    is_correct,
    last_number,
    numbers,
    same_value,
    words,
)
from ftlab.evaluate import checks
from ftlab.evaluate.task import score_answer
from ftlab.rlhf import GoldReward


# -- numbers -----------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("It is 76.0 apples", [76]),
    ("The answer is 76.", [76]),              # a full stop after a number is no decimal point
    ("1,234 stamps", [1234]),                 # thousands separator
    ("We counted 1,234,567.5 grains", [1234567.5]),
    ("1,2,3", [1, 2, 3]),                     # a list: commas group thousands only before 3 digits
    ("The answer is 7.6", [7.6]),             # one number, not 7 and 6
    ("176 apples", [176]),                    # "76" is not inside it
    ("x = -4", [-4]),
    ("5-3=2", [5, 3, 2]),                     # a hyphen after a digit is a dash, not a sign
    ("76 - 70 = 6", [76, 70, 6]),
    ("Q3 sales rose 12%", [12]),              # a digit glued to a word is part of the word
    ("version 1.2.3", [1.2]),                 # the tail of another number is no number
    ("seven apples", []),                     # numbers are read in digits only
    ("", []),
])
def test_numbers_are_read_as_a_reader_reads_them(text, expected):
    assert numbers(text) == expected


def test_the_last_number_is_the_answer_given():
    assert last_number("70 + 6 = 76") == 76
    assert last_number("76 - 70 = 6") == 6
    assert last_number("no numbers here") is None
    assert gives_number("It is 76.0 apples", 76) and gives_number("It is 76.0 apples", "76")
    assert not gives_number("It is 76.5 apples", 76)
    assert gives_number("That makes 1,234 in all.", 1234)
    assert not gives_number("", 0)
    assert as_number(" 76.0 ") == 76 and as_number("1,234") == 1234 and as_number("-3") == -3
    assert as_number("76 apples") is None and as_number("eight") is None


# The two scorers that disagreed before: the task score read "76.0" as 76 then 0 (wrong),
# the gold reward read 76.0 (right); "7.6" was 6 to one, 7.6 to the other.
@pytest.mark.parametrize("text,number,correct", [
    ("It is 76.0 apples", 76, True),
    ("The answer is 7.6", 6, False),
    ("The answer is 7.6", 7.6, True),
    ("The answer is 1,234.", 1234, True),
    ("5 + 3 = 8.\n#### 8", 8, True),
    ("It is 8, no, 9.", 8, False),
    ("The answer is 176.", 76, False),
    ("Ana has -3 left", -3, True),
    ("", 0, False),
])
def test_task_score_and_gold_reward_agree_on_correctness(text, number, correct):
    task = score_answer("arithmetic", text, {"number": number})["correct"]
    gold = is_correct(text, [str(number)])
    reward = GoldReward(target_words=15).score(["q"], [text], answers=[[str(number)]])[0] > 0
    assert task == gold == reward == correct


def test_word_answers_match_whole_words_and_aliases():
    assert is_correct("It is Paris.", ["Paris"])
    assert not is_correct("It is a Parisian city.", ["Paris"])
    assert is_correct("a spider has eight legs", ["8", "eight"])
    assert is_correct("a spider has 8.0 legs", ["8", "eight"])
    assert is_correct("It is Rio\nde  Janeiro", ["Rio de Janeiro"])  # any whitespace in a phrase
    assert is_correct("Capital: BRASÍLIA!", ["Brasília"])  # case-insensitive beyond ASCII
    assert not is_correct("Brasílian", ["Brasília"])


# -- words ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    # whitespace split gave 5, the probes' old regex 7 ("76", "0", "well", "known")
    ("Ana's score is 76.0, well-known.", ["Ana's", "score", "is", "76.0", "well-known"]),
    ("* Yes — it's 1,234 apples!", ["Yes", "it's", "1,234", "apples"]),
    ("5 + 3 = 8", ["5", "3", "8"]),            # signs are no words
    ("**Bold** and _stressed_", ["Bold", "and", "stressed"]),
    ("one,two.three", ["one", "two", "three"]),  # a comma or full stop between words splits
    ("Café au lait", ["Café", "au", "lait"]),
    ("", []),
])
def test_words_are_what_a_reader_counts(text, expected):
    assert words(text) == expected
    assert count_words(text) == len(expected)


def test_every_scorer_imports_the_one_definition():
    # the probes' word checks, the rewards' word count and correctness: the same functions
    assert checks.words is answers.words and checks.has_word is answers.has_word
    assert rlhf.count_words is answers.count_words and rlhf.is_correct is answers.is_correct
    text = "Ana's score is 76.0, well-known."
    assert rlhf.count_words(text) == len(checks.words(text)) == 5
    assert checks.check_instruction("max_words", text, {"n": 6})
    assert not checks.check_instruction("max_words", text, {"n": 5})


def test_whole_word_match():
    assert has_word("The cat sat.", "cat") and has_word("THE CAT", "cat")
    assert has_word("the cat's toy", "cat")  # a possessive contains the word
    assert not has_word("Pick a category.", "cat") and not has_word("concatenate", "cat")
    assert not has_word("anything", "")


def test_same_value_compares_numbers_as_numbers_and_text_loosely():
    assert same_value("34", 34) and same_value(34.0, "34") and same_value("1,234", 1234)
    assert not same_value("34 years", 34)
    assert same_value(" Negative. ", "negative") and not same_value("negative, mostly", "negative")
    assert same_value("Rome", "rome") and not same_value("Rome", "Roma")
