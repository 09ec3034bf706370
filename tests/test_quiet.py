"""Quiet, accurate output: library notices that say nothing about the run are not shown; a mistyped
pipeline name is said to be one."""

import warnings

import pytest


def test_third_party_notices_are_ignored_and_other_warnings_still_show():
    from adaptseg.logging_filters import quiet_third_party_notices

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party_notices()
        warnings.warn("register_new_resolver() is deprecated and will be removed", UserWarning, stacklevel=1)
        warnings.warn("\x1b[33mAdd type hints to the `predict` method to enable data validation", UserWarning, stacklevel=1)
        warnings.warn("One or more dataset names contain '.' characters", UserWarning, stacklevel=1)
        warnings.warn("the learning rate looks odd", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["the learning rate looks odd"]


def test_a_mistyped_pipeline_name_names_the_closest_and_lists_the_pipelines(monkeypatch):
    import adaptseg.pipeline_registry as registry

    def failing_find(raise_errors=True):
        raise ImportError("An error occurred while importing the 'adaptseg.pipelines.adaptatoin' module.")

    monkeypatch.setattr(registry, "find_pipelines", failing_find)
    with pytest.raises(ValueError, match=r"no pipeline 'adaptatoin'\. Did you mean 'adaptation'\? Pipelines: adap"):
        registry.register_pipelines()
