"""``workbench explain``: SHAP contributions of a model's inputs, per row or per feature."""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli._files import read_table
from workbench.cli._output import emit, json_option

_METHODS = ("auto", "tree", "permutation", "kernel")  # kept equal to workbench.explain.METHODS (tested)


@click.command()
@click.argument("model_uri")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV or Parquet file with the model's input columns, one row per example.")
@click.option("--global", "global_importance", is_flag=True,
              help="Print mean |contribution| per feature instead of per-row contributions.")
@click.option("--target", help="Class to explain (default: each row's predicted class).")
@click.option("--method", type=click.Choice(_METHODS), default="auto", show_default=True,
              help="SHAP explainer: tree for tree models, permutation or kernel for any model.")
@click.option("--max-rows", type=int, help="With --global: explain at most this many rows (a sample).")
@click.option("--max-evals", type=int, help="Model evaluations per row for permutation and kernel.")
@json_option
def explain(model_uri: str, data_path: Path, global_importance: bool, target: str | None, method: str,
            max_rows: int | None, max_evals: int | None, as_json: bool) -> None:
    """Explain MODEL_URI's answers on the rows of --data with SHAP.

    Per row: the explained output (the predicted class's probability for classifiers), the base value
    and each input column's contribution; the contributions add up to prediction - base value.
    With --global: each column's mean absolute contribution, most important first.
    """
    from workbench.explain import Explainer

    data = read_table(data_path)
    explainer = Explainer(method=method, max_evals=max_evals).fit(model_uri)  # type: ignore[arg-type]
    if global_importance:
        result = explainer.explain_global(data, target=target, max_rows=max_rows)
        if as_json:
            emit(result.to_dict(), True)
            return
        click.echo(f"mean |contribution| to the {result.output} over {result.n_rows} rows "
                   f"(SHAP {result.method} explainer)")
        emit(result.importance, False)
        return
    local = explainer.explain(data, target=target)
    if as_json:
        emit(local.to_dict(), True)
        return
    click.echo(f"contributions to the {local.output} (SHAP {local.method} explainer); they add up to "
               f"prediction - base_value within {local.additivity_error:.2g}")
    emit(local.to_frame().rename_axis("row").reset_index(), False)


COMMANDS = [explain]
