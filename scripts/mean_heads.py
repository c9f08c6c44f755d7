"""Average exported face models into one (`talkface.train.export_onnx.export_mean`).

Run: .venv/bin/python scripts/mean_heads.py A.onnx B.onnx [...] -o OUT.onnx

The heads (speech-encoder heads exported by talkface) become one network whose outputs are their
mean: weights, and viseme logits before the closure and rounding rules read them; its matrix
products are int8 unless --float32 is given (the exact mean, slower). Calibrate the result afterwards
(`scripts/calibrate_visemes.py OUT.onnx --write`): a mean's logits are not its heads' logits.
"""

from __future__ import annotations

import argparse
import sys

from talkface.train.export_onnx import export_mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="exported models (.onnx with their .json)")
    parser.add_argument("-o", "--out", required=True, help="the averaged model to write (.onnx)")
    parser.add_argument("--float32", action="store_true", help="keep float32 matrix products (exact, slower)")
    args = parser.parse_args()
    from google.protobuf.message import DecodeError

    try:
        print(export_mean(args.models, args.out, int8=not args.float32))
    except (OSError, ValueError, DecodeError) as e:  # a missing or torn file or .json; models that read other input
        sys.exit(f"mean_heads: {e}")


if __name__ == "__main__":
    main()
