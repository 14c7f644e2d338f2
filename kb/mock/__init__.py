"""The mock survey: SDSS-format spectra and catalogs generated from physical ingredients.

See docs/mock_survey.md for what it models and what it does not.
"""

from kb.mock.survey import generate_survey

__all__ = ["generate_survey"]
