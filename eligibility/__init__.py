"""NCT05585671 eligibility: the trial's criteria as versioned data (issue 4).

Not built yet. The risk gate is served by ``serving``; the rule-based criteria will
live here and be imported by ``serving`` (never the other way round).
"""
