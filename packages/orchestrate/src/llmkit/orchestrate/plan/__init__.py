"""Plan-and-execute: a validated plan, one operator per step, checkpoints between steps, replanning."""

from .agent import PlanAndExecuteAgent, step_result_model
from .schema import Plan, PlanBounds, PlanStep, plan_problems, plan_schema_model, validate_plan
from .state import PlanState

__all__ = [
    "Plan",
    "PlanAndExecuteAgent",
    "PlanBounds",
    "PlanState",
    "PlanStep",
    "plan_problems",
    "plan_schema_model",
    "step_result_model",
    "validate_plan",
]
