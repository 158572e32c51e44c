import BallastModel
print("ballast")
