"""Validation sweeps that chose the regularisation strengths written in the r2et2024 and idexpo2024 suites.

Run as scripts (see each docstring); they use the validation split only.
"""
