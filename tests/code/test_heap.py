"""The collector settings of a long-running scoring process (``serving.heap``)."""

import gc
import weakref

from serving import heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only a collection frees it


def test_settle_freezes_the_heap_sets_the_thresholds_and_frees_what_a_reload_replaced():
    before = gc.get_threshold()
    try:
        model = Node()
        gone = weakref.ref(model)
        heap.settle()
        assert gc.get_threshold() == heap.THRESHOLDS
        assert gc.get_freeze_count() > 0
        del model
        gc.collect()
        assert gone() is not None  # frozen: no collection looks at it
        heap.settle()  # as after a champion reload
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
