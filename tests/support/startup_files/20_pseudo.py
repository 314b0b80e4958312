from ophyd import Component as Cpt
from ophyd import PseudoPositioner, PseudoSingle, SoftPositioner
from ophyd.pseudopos import pseudo_position_argument, real_position_argument


class Slit(PseudoPositioner):
    """Gap and centre from two blades."""

    gap = Cpt(PseudoSingle)
    centre = Cpt(PseudoSingle)
    top = Cpt(SoftPositioner, init_pos=1.0)
    bottom = Cpt(SoftPositioner, init_pos=-1.0)

    @pseudo_position_argument
    def forward(self, pseudo):
        return self.RealPosition(top=pseudo.centre + pseudo.gap / 2, bottom=pseudo.centre - pseudo.gap / 2)

    @real_position_argument
    def inverse(self, real):
        return self.PseudoPosition(gap=real.top - real.bottom, centre=(real.top + real.bottom) / 2)


slit = Slit(name="slit")
