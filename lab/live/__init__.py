"""A stack kept under load for rehearsals and drills: the session, its control API and
dashboard, the drill, its score and debrief, and compose workshops."""
