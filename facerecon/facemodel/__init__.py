"""facemodel"""
