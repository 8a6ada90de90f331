"""ACE playbooks: strategy bullets with counters, evolved by generator → reflector → curator deltas."""

from .book import ApplyReport, Bullet, Playbook
from .delta import AddBullet, BulletTag, PlaybookDelta, RefineBullet, Reflection, RetireBullet
from .passes import AceStep, Curator, Generator, Reflector, Trajectory, ace_step

__all__ = [
    "AceStep",
    "AddBullet",
    "ApplyReport",
    "Bullet",
    "BulletTag",
    "Curator",
    "Generator",
    "Playbook",
    "PlaybookDelta",
    "RefineBullet",
    "Reflection",
    "Reflector",
    "RetireBullet",
    "Trajectory",
    "ace_step",
]
