"""The run's row of TensorBoard's HParams tab names its method by its registry key
(`compacter_pl.training.tensorboard`); the rest of the row and the run's curves are checked end to end
(tests/e2e/test_demo.py, test_sweep_end_to_end.py)."""

from compacter_pl.methods import Compacter, IntrinsicSAID, Method, PromptTuning
from compacter_pl.methods.base import class_path_of
from compacter_pl.training.tensorboard import method_column


class Unregistered(Method):
    """A method no key names."""

    def apply(self, model) -> None:
        pass


def test_the_method_column_is_the_registry_key_of_the_class_and_its_arguments():
    assert method_column(Compacter(n=2, bottleneck=8)) == "compacter"  # its arguments are columns of their own
    assert method_column(PromptTuning(init="vocab")) == "prompt_vocab"  # a key that is a class with arguments
    assert method_column(PromptTuning()) == "prompt_random"
    assert method_column(IntrinsicSAID(intrinsic_dim=1400)) == "intrinsic_said"
    assert method_column(Unregistered()) == class_path_of(Unregistered)  # no key: its class path
