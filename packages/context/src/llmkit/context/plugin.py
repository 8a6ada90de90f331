"""llmkit-context's registrations: the `llmkit context` command and the few-shot selectors (bm25, dense)."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_commands(cli):
    from . import cli as context_cli

    context_cli.register(cli)


def _pool_selector(method):
    """A `llmkit_register_fewshot_selectors` factory over `FewShotSelector` with one method (bm25 or dense)."""

    def factory(pool, *, k, seed, labels=None, mmr_lambda=None, balance_labels=False, order="most_similar_last"):
        from .fewshot import Example, FewShotSelector, FewShotSettings

        labels = labels if labels is not None else [None] * len(pool)
        examples = [Example(text, "", label) for text, label in zip(pool, labels, strict=True)]
        settings = FewShotSettings(
            k=k, method=method, mmr_lambda=mmr_lambda, balance_labels=balance_labels, order=order, seed=seed
        )
        return FewShotSelector(examples, settings)

    return factory


@hookimpl
def llmkit_register_fewshot_selectors(register):
    register("bm25", _pool_selector("bm25"))
    register("dense", _pool_selector("dense"))
