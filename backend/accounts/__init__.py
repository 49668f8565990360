"""Accounts: users, API tokens and the administrators' commands."""
