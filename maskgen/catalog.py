"""The trainer's models by name, with a line each: what `maskgen list` shows without importing torch
(`maskgen.train` registers its models with these lines)."""

MODEL_DOCS = {
    "deep-emotion": "Deep-Emotion: spatial-transformer attention + 4 conv layers (lr 0.004, batch 64)",
    "deep-emotion-nostn": "Deep-Emotion without the spatial transformer",
    "deep-emotion-c50": "Deep-Emotion with 50 channels per conv layer instead of 10",
    "compact-cnn": "compact VGG-style CNN, 0.66M parameters: the fastest on a CPU (default)",
    "mini-xception": "mini-Xception: depthwise-separable residual CNN, 0.4M parameters",
    "resnet18": "ResNet-18 for 48x48 grayscale at half width (2.8M parameters)",
    "logreg": "logistic regression on HOG features (scikit-learn)",
    "svm": "RBF support vector machine on HOG features (scikit-learn)",
    "random-forest": "random forest on HOG features (scikit-learn)",
}
