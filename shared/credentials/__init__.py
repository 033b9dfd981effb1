"""Per-team provider credentials: a team's own key for a provider, encrypted at rest."""
