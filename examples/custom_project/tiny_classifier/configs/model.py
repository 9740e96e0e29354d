# Model config (mmengine format) for the tiny_classifier example project.
model = dict(type="TinyClassifier", in_channels=3, num_classes=2, width=4)
tiny_data = dict(num_samples=16, size=8)  # the example's synthetic dataset
