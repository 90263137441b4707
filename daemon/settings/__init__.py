"""TODO sign"""
