"""A fitted head (scaler and estimator, pipeline.modeling.heads) as an ONNX graph: vectors in, probabilities out.

skl2onnx converts the scalers and the logistic regression itself; the two estimators of our own get converters
here, written with skl2onnx's operator algebra. KernelSVM's repeats what libsvm and its Platt sigmoids compute,
DenseHead's its two dense layers. Both compute in the precision `predict` does: KernelSVM's kernel products in
float32 and all after them in float64, so that a sum over thousands of support vectors rounds as it does
there; DenseHead in float64 (networks.uncompiled_copy). skl2onnx loads only when a head is converted.
"""
import itertools

import numpy as np

from pipeline import PipelineError
from pipeline.modeling.heads import DenseHead, StandardScalerInChunks
from pipeline.modeling.kernel_svm import KernelSVM

ONNX_OPSET = 17  # the backbone's (pipeline.features.engines): one graph holds one version of each operator
ML_OPSET = 3  # ONNX's ai.onnx.ml operators, which skl2onnx writes for the scalers
INPUT = "vectors"
OUTPUT = "probabilities"


def head_to_onnx(head, n_features, n_classes):
    """The ONNX ModelProto of a fitted head pipeline: float32 (n, n_features) INPUT, float32 (n, n_classes) OUTPUT."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    estimator = head[-1]
    if list(estimator.classes_) != list(range(n_classes)):  # predict gives unseen classes a column of zeros
        raise PipelineError(f"the head saw {len(estimator.classes_)} of the {n_classes} classes in training, which "
                            "the ONNX graph does not handle: retrain it with images of every class")
    register_converters()
    return convert_sklearn(head, initial_types=[(INPUT, FloatTensorType([None, n_features]))],
                           target_opset={"": ONNX_OPSET, "ai.onnx.ml": ML_OPSET},
                           options={id(estimator): {"zipmap": False}})


def register_converters():
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from skl2onnx.operator_converters.scaler_op import convert_sklearn_scaler
    from skl2onnx.shape_calculators.scaler import calculate_sklearn_scaler_output_shapes

    for estimator, converter in ((KernelSVM, convert_kernel_svm), (DenseHead, convert_dense_head)):
        update_registered_converter(estimator, f"Pipeline{estimator.__name__}",
                                    calculate_linear_classifier_output_shapes, converter,
                                    options={"zipmap": [True, False], "nocl": [True, False]})
    # a StandardScaler that only fits differently: skl2onnx's own converter, under its own name
    update_registered_converter(StandardScalerInChunks, "SklearnScaler", calculate_sklearn_scaler_output_shapes,
                                convert_sklearn_scaler, options={"div": ["std", "div", "div_cast"]})


def convert_kernel_svm(scope, operator, container):
    """KernelSVM.predict_proba: the SVC's one-vs-one decisions, sklearn's one-vs-rest votes from them for more
    than two classes, a Platt sigmoid per column, and the columns normalised."""
    from skl2onnx.algebra import onnx_ops as op

    svm, version = operator.raw_operator, container.target_opset
    X = operator.inputs[0]
    vectors = svm.support_vectors_.astype(np.float32)  # float32 products, as KernelSVM on float32 features

    def double(node):
        return op.OnnxCast(node, to=DOUBLE, op_version=version)

    dots = double(op.OnnxMatMul(X, vectors.T, op_version=version))
    if svm.kernel == "linear":
        kernel = dots
    else:
        rows = double(op.OnnxReduceSum(op.OnnxMul(X, X, op_version=version), np.array([1]), keepdims=1,
                                       op_version=version))
        norms = np.einsum("ij,ij->i", vectors, vectors).astype(np.float64)[None, :]
        squared = op.OnnxSub(op.OnnxAdd(rows, norms, op_version=version),
                             op.OnnxMul(dots, np.array([2.0]), op_version=version), op_version=version)
        kernel = op.OnnxExp(op.OnnxMul(op.OnnxMax(squared, np.array([0.0]), op_version=version),
                                       np.array([-svm.gamma_]), op_version=version), op_version=version)
    weights, intercepts = one_vs_one(svm.svc_)
    pairs = op.OnnxAdd(op.OnnxMatMul(kernel, weights, op_version=version), intercepts, op_version=version)
    n_classes = len(svm.classes_)
    decisions = pairs if n_classes == 2 else one_vs_rest(pairs, n_classes, version)
    slopes, offsets = svm.sigmoids_[:, 0], svm.sigmoids_[:, 1]
    proba = op.OnnxSigmoid(op.OnnxNeg(op.OnnxAdd(op.OnnxMul(decisions, slopes[None, :], op_version=version),
                                                 offsets[None, :], op_version=version), op_version=version),
                           op_version=version)
    if n_classes == 2:
        proba = op.OnnxConcat(op.OnnxSub(np.array([[1.0]]), proba, op_version=version), proba, axis=1,
                              op_version=version)
    else:  # as KernelSVM: a row whose sigmoids are all 0 gets equal probabilities
        total = op.OnnxReduceSum(proba, np.array([1]), keepdims=1, op_version=version)
        proba = op.OnnxWhere(op.OnnxGreater(total, np.array([0.0]), op_version=version),
                             op.OnnxDiv(proba, total, op_version=version), np.array([1.0 / n_classes]),
                             op_version=version)
    emit(proba, scope, operator, container)


def one_vs_one(svc):
    """(weights (support vectors, pairs), intercepts (pairs,)): the SVC's decision for pair (i, j), i < j, is
    kernel row @ weights[:, pair] + intercept; positive means class i (for two classes scikit-learn flips
    the sign of its dual_coef_ and intercept_, so that positive means the second class there)."""
    if len(svc.classes_) == 2:
        return svc.dual_coef_.T.astype(np.float64), svc.intercept_.astype(np.float64)
    starts = np.concatenate([[0], np.cumsum(svc.n_support_)])
    weights = np.zeros((svc.dual_coef_.shape[1], len(svc.intercept_)))
    for pair, (i, j) in enumerate(itertools.combinations(range(len(svc.classes_)), 2)):
        weights[starts[i]:starts[i + 1], pair] = svc.dual_coef_[j - 1, starts[i]:starts[i + 1]]
        weights[starts[j]:starts[j + 1], pair] = svc.dual_coef_[i, starts[j]:starts[j + 1]]
    return weights, svc.intercept_.astype(np.float64)


def one_vs_rest(pairs, n_classes, version):
    """scikit-learn's _ovr_decision_function of one-vs-one decisions: each class's votes plus its summed
    confidence squashed below 1/3, so that the confidences only break ties between votes."""
    from skl2onnx.algebra import onnx_ops as op

    pairs_of_classes = list(itertools.combinations(range(n_classes), 2))
    first, second = np.zeros((len(pairs_of_classes), n_classes)), np.zeros((len(pairs_of_classes), n_classes))
    for pair, (i, j) in enumerate(pairs_of_classes):
        first[pair, i], second[pair, j] = 1.0, 1.0
    wins = op.OnnxCast(op.OnnxGreaterOrEqual(pairs, np.array([0.0]), op_version=version), to=DOUBLE,
                       op_version=version)
    votes = op.OnnxAdd(op.OnnxMatMul(wins, first, op_version=version),
                       op.OnnxMatMul(op.OnnxSub(np.array([1.0]), wins, op_version=version), second,
                                     op_version=version), op_version=version)
    confidence = op.OnnxMatMul(pairs, first - second, op_version=version)
    squashed = op.OnnxDiv(confidence, op.OnnxMul(op.OnnxAdd(op.OnnxAbs(confidence, op_version=version),
                                                            np.array([1.0]), op_version=version),
                                                 np.array([3.0]), op_version=version), op_version=version)
    return op.OnnxAdd(votes, squashed, op_version=version)


def convert_dense_head(scope, operator, container):
    """DenseHead.predict_proba: relu(x W1 + b1) W2 + b2, a sigmoid unit for two classes, else a softmax."""
    from skl2onnx.algebra import onnx_ops as op

    head, version = operator.raw_operator, container.target_opset
    weights = [w.astype(np.float64) for w in head.model_.get_weights()]
    if len(weights) != 4:
        raise PipelineError(f"a dense head with {len(weights) // 2} dense layers cannot be exported: retrain it")
    hidden_w, hidden_b, out_w, out_b = weights
    X = op.OnnxCast(operator.inputs[0], to=DOUBLE, op_version=version)
    hidden = op.OnnxRelu(op.OnnxAdd(op.OnnxMatMul(X, hidden_w, op_version=version), hidden_b, op_version=version),
                         op_version=version)
    logits = op.OnnxAdd(op.OnnxMatMul(hidden, out_w, op_version=version), out_b, op_version=version)
    if out_w.shape[1] == 1:
        positive = op.OnnxSigmoid(logits, op_version=version)
        proba = op.OnnxConcat(op.OnnxSub(np.array([[1.0]]), positive, op_version=version), positive, axis=1,
                              op_version=version)
    else:
        proba = op.OnnxSoftmax(logits, axis=1, op_version=version)
    emit(proba, scope, operator, container)


def emit(probabilities, scope, operator, container):
    """A converter's float64 probabilities to the operator's outputs: the label (their argmax) and themselves."""
    from skl2onnx.algebra import onnx_ops as op

    version = container.target_opset
    label, proba = operator.outputs
    op.OnnxArgMax(probabilities, axis=1, keepdims=0, op_version=version,
                  output_names=[label.full_name]).add_to(scope, container)
    op.OnnxCast(probabilities, to=FLOAT, op_version=version, output_names=[proba.full_name]).add_to(scope, container)


FLOAT, DOUBLE = 1, 11  # onnx.TensorProto.FLOAT, DOUBLE: the values, so that this module loads without onnx
