"""Fixtures shared by the test modules."""
import pytest

from kesl_utils import wordnet as W


@pytest.fixture(scope="module")
def wn():
    """nltk's WordNet 3.0 reader; the test is skipped (with the install command) where it is unavailable."""
    if not W.wordnet_available():
        pytest.skip("WordNet 3.0 is not available offline; apt-get install wordnet-base "
                    "wordnet-sense-index")
    return W.wordnet()
