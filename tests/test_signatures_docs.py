"""Parameter docs for forms and hints: numpydoc and Google docstrings, read by docstring_parser."""

from __future__ import annotations

import subprocess
import sys

from plateflow.signatures import describe_parameters, parse_param_docs


def numpydoc_blur(stack, sigma=1.0, mode="reflect", **options):
    """Blur each plane.

    Parameters
    ----------
    stack : ndarray
        The planes.
    sigma : float
        Standard deviation of the Gaussian,
        in pixels.
    mode : str
        How edges are padded.
    **options
        Passed on to scipy.

    Returns
    -------
    ndarray
        Not a parameter.
    """
    return stack


def google_blur(stack, sigma=1.0, mode="reflect"):
    """Blur each plane.

    Args:
        stack (ndarray): The planes.
        sigma (float): Standard deviation of the Gaussian,
            in pixels.
        mode: How edges are padded.

    Returns:
        The blurred planes (not a parameter).
    """
    return stack


def test_numpydoc_parameters_one_line_each():
    assert parse_param_docs(numpydoc_blur.__doc__) == {
        "stack": "The planes.",
        "sigma": "Standard deviation of the Gaussian, in pixels.",
        "mode": "How edges are padded.",
        "options": "Passed on to scipy.",
    }


def test_google_parameters_one_line_each():
    assert parse_param_docs(google_blur.__doc__) == {
        "stack": "The planes.",
        "sigma": "Standard deviation of the Gaussian, in pixels.",
        "mode": "How edges are padded.",
    }


def test_describe_parameters_carries_the_docs_past_the_stack():
    assert [(p.name, p.doc) for p in describe_parameters(google_blur)] == [
        ("sigma", "Standard deviation of the Gaussian, in pixels."),
        ("mode", "How edges are padded."),
    ]


def test_no_docstring_or_no_parameter_section_gives_no_docs():
    assert parse_param_docs(None) == {} and parse_param_docs("   ") == {}
    assert parse_param_docs("Blur each plane.\n\nNothing about parameters here.") == {}


def test_import_plateflow_does_not_import_docstring_parser():
    code = "import sys, plateflow; print('docstring_parser' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
