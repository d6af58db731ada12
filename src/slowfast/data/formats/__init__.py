"""Readers and writers for the official annotation file formats of Kinetics, Charades and AVA."""
