"""Identities and roles: users, tokens, per-model grants, and who may do what."""
