"""Drawing on videos: what a model predicts (labels over time, AVA boxes) and where it looks (Grad-CAM).

- :mod:`.gradcam`: Grad-CAM maps of a SlowFast classifier or AVA detector, one per pathway;
- :mod:`.draw`: label panels, labelled boxes and heat-map blends on RGB frames (Pillow);
- :mod:`.video`: an H.264 / yuv420p writer that browsers play (PyAV's libx264);
- :mod:`.demo`: ``slowfast demo VIDEO``: scores a video clip by clip and re-encodes it with the drawings.
"""
