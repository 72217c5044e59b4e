"""The cause DALI buries in its pipeline errors, as the decoder and the training backend report it."""
from libs.dataset.dali.available import error_reason

DALI_ERROR = ("Critical error in pipeline:\nError in CPU operator `nvidia.dali.fn.decoders.image`,\n"
              "which was used in the pipeline definition with the following traceback:\n\n  File \"x.py\", line 9\n\n"
              "encountered:\n\nAssert on \"frames_decoders_[s]->IsValid()\" failed: Failed to create video decoder "
              "for \"memory file\"\nC++ context: [/opt/dali/x.h:246] \nCurrent pipeline object is no longer valid.")


def test_the_cause_without_the_pipeline_boilerplate():
    assert error_reason(RuntimeError(DALI_ERROR)) == 'Failed to create video decoder for "memory file"'
    assert error_reason(RuntimeError("Critical error in pipeline:\n")) == "RuntimeError"
    assert error_reason(RuntimeError("plain message")) == "plain message"
