"""The guards' error: bad guard specifications and options."""

from ..errors import LlmkitError


class GuardError(LlmkitError, ValueError):
    """A guard that does not exist, options it does not take, or a policy/schema it cannot read."""
