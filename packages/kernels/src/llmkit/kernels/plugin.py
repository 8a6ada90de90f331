"""llmkit-kernels' registrations, made through the `llmkit` entry point like any third-party plugin."""

from llmkit.core import structured  # registers the reference "grammar_matcher" op this plugin overrides
from llmkit.core.hookspecs import hookimpl

from . import _C
from .grammar_matcher import NativeGrammarMatcher, compile_grammar_ir, compile_rule_nfas, refine_dfa_rows
from .ops import NATIVE_OPS

# Row lookups and the fused step forward are CPU kernels; on CUDA the torch references run them.
CPU_ONLY_OPS = frozenset({"dequantize_rows", "paged_forward"})

# Above the references (the fallback), below any plugin that registers a higher priority to replace us.
NATIVE_PRIORITY = 1


@hookimpl
def llmkit_register_kernels(register):
    has_gpu = _C.cuda_built() and _C.cuda_device_count() > 0
    for op, implementation in NATIVE_OPS.items():
        register(op, "cpu", implementation, priority=NATIVE_PRIORITY)
        if has_gpu and op not in CPU_ONLY_OPS:
            register(op, "cuda", implementation, priority=NATIVE_PRIORITY)
    register(structured.MATCHER_OP, "cpu", NativeGrammarMatcher, priority=NATIVE_PRIORITY)
    register(structured.dfa.REFINE_OP, "cpu", refine_dfa_rows, priority=NATIVE_PRIORITY)
    register(structured.compiled.TABLES_OP, "cpu", compile_rule_nfas, priority=NATIVE_PRIORITY)
    register(structured.compiled.IR_TABLES_OP, "cpu", compile_grammar_ir, priority=NATIVE_PRIORITY)
