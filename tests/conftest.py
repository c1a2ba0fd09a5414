"""Fixtures shared by the test modules."""
import pytest

from kesl_utils import wordnet as W


@pytest.fixture(scope="module")
def wn():
    """nltk's WordNet 3.0 reader; the test skips (saying what to run) where it is missing."""
    if not W.wordnet_available():
        pytest.skip("WordNet 3.0 is not provisioned (this check downloads nothing); run "
                    "`make wordnet`, or apt-get install wordnet-base wordnet-sense-index")
    return W.wordnet()
